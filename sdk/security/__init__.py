"""corral.security: who may talk to corral and what they may do.

`keys` (CurveZMQ key pairs, the master's key ring), `zap` (the ZAP gate that admits known
keys and stamps each frame with its principal), `links` (what a transport needs to run
over CurveZMQ; `Credential`, a client's key pair and the master's key), `acls` (Mesos-
shaped ACLs), `credentials` (HTTP credentials, the HTTP guard, executor tokens),
`client` (what an HTTP client presents: `ClientCredential`), `jsonfile` (reading those
JSON files) and `tls` (HTTPS on the daemons' HTTP port). The engines authorise with the ACLs
(`corral.engines.authorization`); nothing here decides what a message means.
"""
