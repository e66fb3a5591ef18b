"""The security battery (issue 6): every MUST of ../shared/SECURITY.md section 2, each test
naming its id, run against a real `bastion serve` over loopback HTTP with authentication on
(API keys made by `bastion keys`, RS256 JWTs checked against a JWKS the tests write).

conftest.py             the shared gateway (fixture stdio upstream `fx__`, recording HTTP
                        upstream `rec__`), a second gateway (`aux`: JWKS URL, strict throttle,
                        dead upstream), clients for both protocol eras, a JWT minter
test_transport.py       TR-1 TR-2 TR-3 TR-4 TR-5 TR-6 TR-7 TR-8 TR-9 TR-10 TR-11 TR-12
test_authentication.py  AU-1 AU-2 AU-3 AU-4 AU-5 AU-6 AU-7 AU-8
test_authorization.py   AZ-1 AZ-2 AZ-3 AZ-4 TC-5 TC-6
test_sessions.py        SE-1 SE-2 SE-3 SE-4
test_input.py           IN-1 IN-2 IN-5
test_exhaustion.py      DS-1 DS-2 DS-4
test_load.py            VT-4 (10,000 connections; DS-3 accuracy under a race), DS-1 DS-2 limits
test_upstream.py        UP-1 UP-4 UP-5
test_audit.py           AD-1 AD-2 AD-3
test_mtls.py            AU-1 AU-2 with mTLS client certificates over HTTPS

Elsewhere, also against a real `bastion serve`: DS-3, IN-3, TC-1..TC-6, UP-1 with the
malicious upstream (tests/pipeline/test_threats_e2e.py); AZ-6, AD-4 and SE-3 revocation
through the admin API (tests/pipeline/test_admin_e2e.py); IN-4 and AZ-3 on resource URIs
in tests/pipeline/test_resource_uris_e2e.py (units: tests/guard/test_uris.py). DS-4 and AD-5
metrics: test_exhaustion.py.
VT-1: tests/conformance (the official suite, pinned, against the fixture and the gateway).
VT-3, access control in the OWASP A01 style: force browsing and vertical escalation on the
admin API (tests/admin/test_access.py), cross-principal sessions (SE-2 here), JWT tampering
(AU-6 here), CORS and Origin (TR-1, TR-4 here). SE-3's idle and absolute session timeouts:
test_sessions.py, with short values in `gateway.sessions`. Not covered: UP-2/UP-3 (no OAuth
proxying or discovery of upstreams to attack). AU-2's 403 `insufficient_scope`: policy
refusals are JSON-RPC -32003, which AZ-4 allows. AZ-5 is a SHOULD.
"""
