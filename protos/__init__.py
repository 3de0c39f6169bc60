"""Generated protobuf modules for corral's wire schema (built from protos/*.proto).

Never edit the generated `*_pb2.py` files: change `corral.proto` and rebuild.
"""
