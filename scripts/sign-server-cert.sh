#!/usr/bin/env bash
#
# sign-server-cert.sh - issue a TLS server certificate from the root CA made
# by gen-root-ca.sh, with nothing but OpenSSL. Run with --help for details.
set -euo pipefail

# Locate lib/common.sh next to this script (following symlinks to it).
src=${BASH_SOURCE[0]}
while [[ -L $src ]]; do
    link_dir=$(cd -P -- "$(dirname -- "$src")" && pwd)
    src=$(readlink -- "$src")
    [[ $src == /* ]] || src=$link_dir/$src
done
SCRIPT_DIR=$(cd -P -- "$(dirname -- "$src")" && pwd)
if [[ ! -r $SCRIPT_DIR/lib/common.sh ]]; then
    printf '%s: error: %s is missing; keep the lib/ directory next to this script\n' \
        "${0##*/}" "$SCRIPT_DIR/lib/common.sh" >&2
    exit 1
fi
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$SCRIPT_DIR/lib/common.sh"

usage() {
    cat <<EOF
Usage: $PROG DIR NAME (--dns NAME | --ip ADDR)... [--spiffe-id ID]
                         [--days N] [--curve P-256|P-384|P-521]

Issue a TLS server certificate signed by the root CA in DIR (DIR/ca.crt and
DIR/ca.key, as made by gen-root-ca.sh). A fresh private key is generated for
every certificate; it never leaves DIR. Only 'openssl' (3.0+) is needed.

Arguments:
  DIR               The CA directory holding ca.crt and ca.key.
  NAME              Base name of the new files and the certificate's CN:
                    letters, digits, '.', '_' and '-'.

Options:
  --dns NAME        A DNS subject alternative name (repeatable), e.g.
                    localhost, api.example.com, *.svc.example.com.
  --ip ADDR         An IP address subject alternative name (repeatable),
                    IPv4 or IPv6, e.g. 127.0.0.1 or ::1.
                    At least one --dns or --ip is required.
  --spiffe-id ID    Also put this SPIFFE ID in the certificate as a URI SAN,
                    e.g. spiffe://mesh.local/service/api (scheme spiffe,
                    lowercase trust domain, non-empty path).
  --days N          Validity in days (default: 90). Must end before the CA does.
  --curve CURVE     Curve of the new key: P-384 (default), P-256 or P-521.
  -h, --help        Show this help and exit.

Files produced (existing files are never overwritten; the script refuses):
  DIR/NAME.key      The server's private key: ECDSA, PKCS#8 PEM, mode 0600.
  DIR/NAME.crt      The certificate (PEM, mode 0644), signed by the root with
                    ecdsa-with-SHA384 (SHA-512 if the root key is P-521):
                      basicConstraints  critical, CA:FALSE
                      keyUsage          critical, digitalSignature
                      extendedKeyUsage  serverAuth
                      subjectAltName    exactly the --dns/--ip/--spiffe-id given
                      authority/subject key identifiers, random 134-bit serial
The CSR and OpenSSL config live in a temporary directory that is removed on
exit. The script prints the subject, serial, SANs and expiry it issued.

Examples:
  $PROG ./pki server --dns localhost --ip 127.0.0.1
  $PROG ./pki api --dns api.mesh.local --dns localhost --ip ::1 \\
      --spiffe-id spiffe://mesh.local/service/api --days 30

Check the result:
  openssl verify -x509_strict -CAfile DIR/ca.crt -purpose sslserver DIR/NAME.crt
  openssl x509 -in DIR/NAME.crt -noout -text

Use it (static mode):
  mtls-server --cert DIR/NAME.crt --key DIR/NAME.key --ca-cert DIR/ca.crt ...
EOF
}

dir=
name=
curve=P-384
days=90
spiffe_id=

positional() {
    if [[ -z $dir ]]; then
        dir=$1
    elif [[ -z $name ]]; then
        name=$1
    else
        usage_error "unexpected argument '$1' (DIR is '$dir', NAME is '$name')"
    fi
}

while (($#)); do
    # Accept --option=value as well as --option value.
    if [[ $1 == --*=* ]]; then
        set -- "${1%%=*}" "${1#*=}" "${@:2}"
    fi
    case $1 in
    -h | --help)
        usage
        exit 0
        ;;
    --dns)
        need_value "$1" "$#" "${2-}"
        validate_dns "$2"
        add_san DNS "$2"
        shift 2
        ;;
    --ip)
        need_value "$1" "$#" "${2-}"
        validate_ip "$2"
        add_san IP "$2"
        shift 2
        ;;
    --spiffe-id)
        need_value "$1" "$#" "${2-}"
        [[ -z $spiffe_id ]] || usage_error "--spiffe-id given twice; a certificate carries exactly one SPIFFE ID"
        validate_spiffe_id "$2"
        spiffe_id=$2
        add_san URI "$2"
        shift 2
        ;;
    --days)
        need_value "$1" "$#" "${2-}"
        days=$2
        shift 2
        ;;
    --curve)
        need_value "$1" "$#" "${2-}"
        curve=$2
        shift 2
        ;;
    --)
        shift
        break
        ;;
    -*)
        usage_error "unknown option '$1'"
        ;;
    *)
        positional "$1"
        shift
        ;;
    esac
done
# Anything after "--" is positional.
while (($#)); do
    positional "$1"
    shift
done

[[ -n $dir ]] || usage_error "missing DIR (the CA directory with ca.crt and ca.key)"
[[ -n $name ]] || usage_error "missing NAME (base name for NAME.key and NAME.crt)"
validate_name "$name"
validate_days "$days"
validate_curve "$curve" P-256 P-384 P-521
host_names=0
for entry in "${SANS[@]}"; do
    [[ $entry == URI:* ]] || host_names=$((host_names + 1))
done
((host_names > 0)) || usage_error "a server certificate needs at least one --dns NAME or --ip ADDR"

sign_leaf server "$dir" "$name" "$curve" "$days"
