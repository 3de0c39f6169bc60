"""corral: a Mesos-style cluster manager and framework SDK."""
__version__ = "0.1.0"
