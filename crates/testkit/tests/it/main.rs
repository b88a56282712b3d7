//! Tests that need no mtls-mesh program, only bash and OpenSSL: the scripts in `scripts/`.

mod openssl_scripts;
