"""corral.security: who may talk to corral (CurveZMQ keys, HTTP credentials) and what they may do (ACLs)."""
