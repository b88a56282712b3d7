"""py-spiffe (the Python `spiffe` package) against mtls-agent: fetch an X.509-SVID and the
bundle, fetch and validate a JWT-SVID, watch a rotation arrive on the stream, then call
mtls-server over mutual TLS 1.3 with the fetched SVID. Prints one line per step; the Rust test
(agent/python.rs) checks them. Arguments: SOCKET OUT_DIR SERVER_PORT"""

import http.client
import ssl
import sys
import threading

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from spiffe import TrustDomain, WorkloadApiClient

socket, out, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
client = WorkloadApiClient(socket_path=socket, default_timeout=20)

svid = client.fetch_x509_svid()
print("X509", svid.spiffe_id, flush=True)
svid.save(out + "/py.crt", out + "/py.key", serialization.Encoding.PEM)
bundle = client.fetch_x509_bundles().get_bundle_for_trust_domain(TrustDomain("mesh.local"))
bundle.save(out + "/py-bundle.pem", serialization.Encoding.PEM)

jwt = client.fetch_jwt_svid(audience={"spiffe://mesh.local/service/db"})
print("JWT", jwt.spiffe_id, flush=True)
valid = client.validate_jwt_svid(jwt.token, "spiffe://mesh.local/service/db")
print("VALID", valid.spiffe_id, flush=True)
try:
    client.validate_jwt_svid(jwt.token, "spiffe://mesh.local/service/other")
    print("ACCEPTED another audience", flush=True)
except Exception as e:  # the agent answers INVALID_ARGUMENT
    print("REFUSED another audience", flush=True)

# A rotation on the stream: two different leaf serials.
serials = set()
rotated = threading.Event()


def on_context(ctx):
    serials.add(ctx.default_svid.leaf.serial_number)
    if len(serials) >= 2:
        rotated.set()


def on_error(err):
    print("STREAM ERROR", err, flush=True)


handle = client.stream_x509_contexts(on_success=on_context, on_error=on_error)
print("ROTATED" if rotated.wait(20) else "NO ROTATION", flush=True)
handle.cancel()

ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
ctx.load_verify_locations(out + "/py-bundle.pem")
ctx.load_cert_chain(out + "/py.crt", out + "/py.key")
conn = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=20)
conn.request("GET", "/api/status")
response = conn.getresponse()
print("HTTP", response.status, response.read().decode(), flush=True)
client.close()
