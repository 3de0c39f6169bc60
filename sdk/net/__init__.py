"""The network layer, below the engines: the ZeroMQ transport (`transport`), the message
catalogue that maps envelope types to body classes (`protocol`), the status path's row
messages (`wire`) and the small HTTP server every daemon runs (`http`). Nothing here
knows a protocol rule."""
