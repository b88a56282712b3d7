# shellcheck shell=bash
#
# Shared helpers for the mtls-mesh OpenSSL scripts (gen-root-ca.sh,
# sign-server-cert.sh, sign-client-cert.sh). Sourced, never executed.
#
# Only bash and the `openssl` command (OpenSSL 3.0 or newer) are needed.
#
# Conventions:
#   * usage_error: the command line is wrong      -> message on stderr, exit 2
#   * die:         something failed while working  -> message on stderr, exit 1
#   * Nothing is written to the final paths until every step has succeeded:
#     files are built in a private temporary directory inside the target
#     directory (same filesystem) and then hard-linked into place with `ln`,
#     which fails instead of overwriting if the name already exists.

# The name the user ran, for messages ("sign-server-cert.sh: ...").
PROG=${0##*/}

# Private keys, temp files and new directories are created owner-only from
# the very first byte; certificates are relaxed to 0644 explicitly.
umask 077

die() {
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    exit 1
}

usage_error() {
    printf '%s: %s\n' "$PROG" "$*" >&2
    printf "Try '%s --help' for more information.\n" "$PROG" >&2
    exit 2
}

# need_value OPTION REMAINING_ARGC [VALUE]
# Checks that OPTION was followed by a usable value.
need_value() {
    local opt=$1 argc=$2 value=${3-}
    if ((argc < 2)) || [[ -z $value ]]; then
        usage_error "option $opt needs a value"
    fi
    if [[ $value == -* ]]; then
        usage_error "option $opt needs a value, got '$value' (looks like another option)"
    fi
}

# need_count OPTION REMAINING_ARGC [VALUE]
# Checks that OPTION was followed by a whole number >= 1 (counts, rates, sizes of the benchmark
# scripts).
need_count() {
    need_value "$@"
    [[ $3 =~ ^[1-9][0-9]*$ ]] || usage_error "$1 needs a whole number >= 1, got '$3'"
}

require_openssl() {
    command -v openssl >/dev/null 2>&1 ||
        die "the 'openssl' command was not found; install OpenSSL 3 (Debian/Ubuntu: apt-get install openssl)"
    local version
    version=$(openssl version 2>/dev/null) || die "'openssl version' failed; is OpenSSL installed correctly?"
    if [[ ! $version =~ ^OpenSSL\ ([3-9]|[1-9][0-9])\. ]]; then
        die "OpenSSL 3.0 or newer is required, found: $version"
    fi
}

# validate_days VALUE -> usage error unless 1..36500
validate_days() {
    local days=$1
    if [[ ! $days =~ ^[1-9][0-9]{0,4}$ ]] || ((days > 36500)); then
        usage_error "--days must be a whole number of days between 1 and 36500, got '$days'"
    fi
}

# validate_curve VALUE ALLOWED... -> usage error unless VALUE is one of ALLOWED
validate_curve() {
    local curve=$1 allowed
    shift
    for allowed in "$@"; do
        [[ $curve == "$allowed" ]] && return 0
    done
    usage_error "--curve must be one of: $* (got '$curve'); all keys are ECDSA, RSA is not supported"
}

# validate_name NAME -> usage error unless NAME is a safe file base name
validate_name() {
    local name=$1
    if [[ ! $name =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ ]]; then
        usage_error "NAME must be 1-64 characters of letters, digits, '.', '_' or '-', starting with a letter or digit (it becomes NAME.key / NAME.crt and the certificate's CN), got '$name'"
    fi
    if [[ $name == ca ]]; then
        usage_error "NAME 'ca' is reserved for the root CA files (ca.key, ca.crt); pick another name"
    fi
}

# validate_spiffe_id ID -> usage error unless ID follows the SPIFFE ID spec:
# scheme spiffe, lowercase trust domain of at most 255 bytes, non-empty path
# of non-empty segments, no dot segments, no query/fragment/port/userinfo,
# <= 2048 bytes. The same verdicts as pki::SpiffeId::parse (a test in
# crates/pki/tests/it/script_validators.rs runs both on one table).
validate_spiffe_id() {
    # Byte semantics and ASCII ranges, whatever the caller's locale.
    local LC_ALL=C
    local id=$1 rest td path seg
    local hint="expected e.g. spiffe://mesh.local/service/api"
    if ((${#id} > 2048)); then
        usage_error "SPIFFE ID is longer than 2048 bytes"
    fi
    if [[ $id != spiffe://* ]]; then
        usage_error "SPIFFE ID '$id' must start with 'spiffe://' ($hint)"
    fi
    rest=${id#spiffe://}
    if [[ $rest == *[?#]* ]]; then
        usage_error "SPIFFE ID '$id' must not contain a query ('?') or fragment ('#')"
    fi
    td=${rest%%/*}
    if [[ -z $td ]]; then
        usage_error "SPIFFE ID '$id' has an empty trust domain ($hint)"
    fi
    if [[ $td == *[A-Z]* ]]; then
        usage_error "SPIFFE ID '$id': trust domain '$td' must be lowercase (try '${td,,}')"
    fi
    if [[ $td == *[:@]* ]]; then
        usage_error "SPIFFE ID '$id': trust domain '$td' must not contain a port or user info"
    fi
    if [[ ! $td =~ ^[a-z0-9._-]+$ ]]; then
        usage_error "SPIFFE ID '$id': trust domain '$td' may contain only a-z, 0-9, '.', '-' and '_'"
    fi
    if ((${#td} > 255)); then
        usage_error "SPIFFE ID '$id': the trust domain is longer than 255 bytes"
    fi
    if [[ $rest != */* || $rest == "$td/" ]]; then
        usage_error "SPIFFE ID '$id' needs a non-empty path after the trust domain ($hint)"
    fi
    path=${rest#"$td"/}
    if [[ $path == /* || $path == */ || $path == *//* ]]; then
        usage_error "SPIFFE ID '$id' has an empty path segment ('//' or a trailing '/')"
    fi
    # Segment by segment with parameter expansion (`read` would stop at a newline).
    while [[ -n $path ]]; do
        seg=${path%%/*}
        if [[ $path == */* ]]; then path=${path#*/}; else path=; fi
        if [[ $seg == . || $seg == .. ]]; then
            usage_error "SPIFFE ID '$id' must not contain '.' or '..' path segments"
        fi
        if [[ ! $seg =~ ^[A-Za-z0-9._-]+$ ]]; then
            usage_error "SPIFFE ID '$id': path segment '$seg' may contain only letters, digits, '.', '-' and '_'"
        fi
    done
}

# validate_dns NAME -> usage error unless NAME is a DNS name (optionally a
# leading '*.' wildcard), letters/digits/hyphens, labels <= 63, total <= 253.
# The same verdicts as pki::rfc5280::dns_name_problem (tested on one table).
validate_dns() {
    local LC_ALL=C
    local name=$1
    local label='[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?'
    if ((${#name} > 253)) || [[ ! $name =~ ^(\*\.)?$label(\.$label)*$ ]]; then
        usage_error "--dns '$name' is not a valid DNS name (letters, digits and '-', dot-separated, no trailing dot; '*.' allowed as the first label)"
    fi
}

_is_ipv4() {
    local ip=$1 octet
    local -a octets
    [[ $ip =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || return 1
    IFS=. read -r -a octets <<<"$ip"
    for octet in "${octets[@]}"; do
        ((10#$octet <= 255)) || return 1
    done
}

# _groups_ok TEXT -> counts colon-separated 1-4 digit hex groups into
# NGROUPS; fails on an empty or malformed group. Empty TEXT is 0 groups.
_groups_ok() {
    local text=$1 group
    local -a groups
    NGROUPS=0
    [[ -z $text ]] && return 0
    [[ $text != :* && $text != *: ]] || return 1
    IFS=: read -r -a groups <<<"$text"
    for group in "${groups[@]}"; do
        [[ $group =~ ^[0-9A-Fa-f]{1,4}$ ]] || return 1
        NGROUPS=$((NGROUPS + 1))
    done
}

_is_ipv6() {
    local ip=$1 head tail nhead
    [[ $ip == *:* && $ip =~ ^[0-9A-Fa-f:.]+$ ]] || return 1
    # An embedded IPv4 address may end the address (e.g. ::ffff:192.0.2.1);
    # it counts as two 16-bit groups.
    if [[ $ip == *.* ]]; then
        _is_ipv4 "${ip##*:}" || return 1
        ip="${ip%:*}:0:0"
    fi
    if [[ $ip == *::* ]]; then
        head=${ip%%::*}
        tail=${ip#*::}
        [[ $tail != *::* && $tail != :* ]] || return 1 # one '::' only
        _groups_ok "$head" || return 1
        nhead=$NGROUPS
        _groups_ok "$tail" || return 1
        ((nhead + NGROUPS <= 7))
    else
        _groups_ok "$ip" || return 1
        ((NGROUPS == 8))
    fi
}

# validate_ip ADDR -> usage error unless ADDR is an IPv4 or IPv6 address
validate_ip() {
    local ip=$1
    if ! _is_ipv4 "$ip" && ! _is_ipv6 "$ip"; then
        usage_error "--ip '$ip' is not an IPv4 or IPv6 address (e.g. 127.0.0.1 or ::1)"
    fi
}

# dn_escape VALUE -> VALUE escaped for `openssl req -subj /CN=...`
dn_escape() {
    local v=$1
    v=${v//\\/\\\\}
    v=${v//\//\\/}
    v=${v//+/\\+}
    printf '%s' "$v"
}

# random_serial -> hex for `-set_serial 0x...`: 17 random bytes with the top
# two bits of the first byte forced to 01, so the serial is always positive,
# always encodes in exactly 17 DER octets, and carries 134 random bits.
random_serial() {
    local hex first
    hex=$(openssl rand -hex 17) || die "openssl rand failed"
    [[ $hex =~ ^[0-9a-f]{34}$ ]] || die "openssl rand returned unexpected output '$hex'"
    first=$(((16#${hex:0:2} & 0x3f) | 0x40))
    printf '%02x%s' "$first" "${hex:2}"
}

# make_workdir PARENT -> sets WORKDIR to a fresh private temporary directory
# inside PARENT (so the final `ln` stays on one filesystem); it is removed
# on exit, whatever the outcome.
WORKDIR=
cleanup_workdir() {
    if [[ -n $WORKDIR && -d $WORKDIR ]]; then
        rm -rf -- "$WORKDIR"
    fi
}
make_workdir() {
    local parent=$1
    WORKDIR=$(mktemp -d "$parent/.${PROG%.sh}.tmp.XXXXXX") ||
        die "cannot create a temporary directory in '$parent' (is it writable?)"
    trap cleanup_workdir EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
}

# run_openssl WHAT ARGS... -> runs `openssl ARGS...` (which must write its
# result with -out), keeping its chatter quiet; on failure prints WHAT and
# OpenSSL's own message, exit 1.
run_openssl() {
    local what=$1 errfile
    shift
    errfile="$WORKDIR/openssl.log"
    if ! openssl "$@" >"$errfile" 2>&1; then
        printf '%s: error: %s failed. OpenSSL said:\n' "$PROG" "$what" >&2
        sed 's/^/    /' "$errfile" >&2 2>/dev/null || cat "$errfile" >&2
        exit 1
    fi
}

# gen_ec_key CURVE OUT -> new ECDSA private key, PKCS#8 PEM, named curve.
gen_ec_key() {
    local curve=$1 out=$2
    run_openssl "generating the $curve private key" genpkey -algorithm EC \
        -pkeyopt "ec_paramgen_curve:$curve" -pkeyopt ec_param_enc:named_curve -out "$out"
    chmod 600 "$out"
}

# refuse_existing PATH... -> error if any of the paths already exists.
refuse_existing() {
    local p
    for p in "$@"; do
        if [[ -e $p || -L $p ]]; then
            die "'$p' already exists; refusing to overwrite it (move it away or choose another name)"
        fi
    done
}

# publish SRC DEST -> hard-link SRC to DEST, failing if DEST exists.
publish() {
    local src=$1 dest=$2
    ln -- "$src" "$dest" 2>/dev/null ||
        die "could not create '$dest' (it appeared meanwhile, or the directory does not allow it); nothing was overwritten"
}

# openssl_field FILE ARGS... -> one line of `openssl x509 -noout ARGS`
# with the 'name=' prefix removed.
openssl_field() {
    local file=$1 out
    shift
    out=$(openssl x509 -in "$file" -noout "$@" 2>/dev/null) || return 1
    printf '%s' "${out#*=}"
}

# cert_fingerprint FILE -> sets FP_COLON (AB:CD:...) and FP_HEX (abcd...)
# for the SHA-256 of the certificate's DER encoding.
cert_fingerprint() {
    local file=$1 line
    line=$(openssl x509 -in "$file" -noout -fingerprint -sha256) ||
        die "cannot compute the fingerprint of '$file'"
    FP_COLON=${line#*=}
    FP_HEX=${FP_COLON//:/}
    FP_HEX=${FP_HEX,,}
}

# add_san TYPE VALUE -> appends "TYPE:VALUE" to the SANS array, refusing
# duplicates (the certificate gets exactly the names given, in order).
SANS=()
add_san() {
    local entry="$1:$2" have
    for have in "${SANS[@]}"; do
        if [[ ${have,,} == "${entry,,}" ]]; then
            usage_error "subject alternative name '$entry' was given twice"
        fi
    done
    SANS+=("$entry")
}

# sign_leaf KIND DIR NAME CURVE DAYS
# Issues DIR/NAME.key + DIR/NAME.crt signed by DIR/ca.key, with the subject
# alternative names in SANS. KIND is "server" (EKU serverAuth) or "client"
# (EKU clientAuth). Arguments must already be validated.
sign_leaf() {
    local kind=$1 dir=$2 name=$3 curve=$4 days=$5
    local ca_crt="$dir/ca.crt" ca_key="$dir/ca.key"
    local key="$dir/$name.key" crt="$dir/$name.crt"
    local eku purpose subj ca_text ca_curve digest ca_end pub_crt pub_key serial
    local entry n_dns=0 n_ip=0 n_uri=0

    case $kind in
    server) eku=serverAuth purpose=sslserver ;;
    client) eku=clientAuth purpose=sslclient ;;
    *) die "internal error: unknown certificate kind '$kind'" ;;
    esac

    require_openssl

    # --- The CA -----------------------------------------------------------
    if [[ ! -d $dir ]]; then
        die "CA directory '$dir' does not exist; create a root first: gen-root-ca.sh $dir"
    fi
    [[ -f $ca_crt ]] || die "'$ca_crt' not found; create a root first: gen-root-ca.sh $dir"
    [[ -f $ca_key ]] || die "'$ca_key' not found; the CA private key must be next to '$ca_crt'"
    [[ -r $ca_key ]] || die "cannot read '$ca_key' (permission denied); run as the CA key's owner"
    refuse_existing "$key" "$crt"

    ca_text=$(openssl x509 -in "$ca_crt" -noout -text 2>/dev/null) ||
        die "'$ca_crt' is not a PEM certificate that OpenSSL can read"
    if [[ $ca_text != *"Public Key Algorithm: id-ecPublicKey"* ]]; then
        die "'$ca_crt' does not hold an ECDSA key; mtls-mesh certificates are ECDSA only (RSA is refused)"
    fi
    if [[ $ca_text =~ NIST\ CURVE:\ (P-[0-9]+) ]]; then
        ca_curve=${BASH_REMATCH[1]}
    else
        die "'$ca_crt' uses an EC curve other than P-256, P-384 or P-521"
    fi
    # The hash follows the CA key's size: ecdsa-with-SHA384 for the default
    # P-384 root, SHA-512 for a P-521 root (SHA-256 for a foreign P-256 CA).
    case $ca_curve in
    P-256) digest=sha256 ;;
    P-384) digest=sha384 ;;
    P-521) digest=sha512 ;;
    *) die "'$ca_crt' uses curve $ca_curve; expected P-256, P-384 or P-521" ;;
    esac
    if [[ $ca_text != *"CA:TRUE"* ]]; then
        die "'$ca_crt' is not a CA certificate (basicConstraints CA:TRUE is missing)"
    fi
    pub_crt=$(openssl x509 -in "$ca_crt" -noout -pubkey 2>/dev/null) ||
        die "cannot read the public key of '$ca_crt'"
    pub_key=$(openssl pkey -in "$ca_key" -pubout 2>/dev/null) ||
        die "cannot read the private key '$ca_key' (not a PEM private key, or wrong passphrase)"
    if [[ $pub_crt != "$pub_key" ]]; then
        die "'$ca_key' does not belong to '$ca_crt' (their public keys differ)"
    fi
    ca_end=$(openssl_field "$ca_crt" -enddate) || ca_end="?"
    if ! openssl x509 -in "$ca_crt" -noout -checkend 0 >/dev/null 2>&1; then
        die "the CA certificate '$ca_crt' expired ($ca_end); create a new root"
    fi
    if ! openssl x509 -in "$ca_crt" -noout -checkend $((days * 86400)) >/dev/null 2>&1; then
        die "a certificate valid for $days days would outlive the CA certificate (CA not after: $ca_end); use a smaller --days"
    fi

    # --- Build everything in a private temp dir ---------------------------
    make_workdir "$dir"

    {
        printf '%s\n' \
            "# OpenSSL configuration written by $PROG (self-contained; the" \
            "# system openssl.cnf is not consulted)." \
            "[req]" \
            "distinguished_name = req_dn" \
            "string_mask        = utf8only" \
            "" \
            "[req_dn]" \
            "" \
            "[leaf]" \
            "basicConstraints       = critical, CA:FALSE" \
            "keyUsage               = critical, digitalSignature" \
            "extendedKeyUsage       = $eku" \
            "subjectKeyIdentifier   = hash" \
            "authorityKeyIdentifier = keyid:always" \
            "subjectAltName         = @alt_names" \
            "" \
            "[alt_names]"
        for entry in "${SANS[@]}"; do
            case $entry in
            DNS:*) n_dns=$((n_dns + 1)) && printf 'DNS.%d = %s\n' "$n_dns" "${entry#DNS:}" ;;
            IP:*) n_ip=$((n_ip + 1)) && printf 'IP.%d = %s\n' "$n_ip" "${entry#IP:}" ;;
            URI:*) n_uri=$((n_uri + 1)) && printf 'URI.%d = %s\n' "$n_uri" "${entry#URI:}" ;;
            *) die "internal error: bad SAN entry '$entry'" ;;
            esac
        done
    } >"$WORKDIR/leaf.cnf"

    gen_ec_key "$curve" "$WORKDIR/leaf.key"
    subj="/CN=$(dn_escape "$name")"
    run_openssl "creating the certificate signing request" req -new \
        -config "$WORKDIR/leaf.cnf" -key "$WORKDIR/leaf.key" \
        -subj "$subj" -out "$WORKDIR/leaf.csr"
    serial=$(random_serial)
    run_openssl "signing the certificate with '$ca_key'" x509 -req \
        -in "$WORKDIR/leaf.csr" -CA "$ca_crt" -CAkey "$ca_key" \
        -set_serial "0x$serial" -days "$days" -"$digest" \
        -extfile "$WORKDIR/leaf.cnf" -extensions leaf -out "$WORKDIR/leaf.crt"
    chmod 644 "$WORKDIR/leaf.crt"

    # Self-check with the same command users are told to run.
    run_openssl "verifying the new certificate against '$ca_crt'" verify \
        -x509_strict -CAfile "$ca_crt" -purpose "$purpose" "$WORKDIR/leaf.crt"

    # --- Publish (never overwriting) ---------------------------------------
    publish "$WORKDIR/leaf.key" "$key"
    if ! (publish "$WORKDIR/leaf.crt" "$crt"); then
        rm -f -- "$key"
        exit 1
    fi

    # --- Report -------------------------------------------------------------
    local subject issuer serial_out not_after sans_text line sans_out=
    subject=$(openssl_field "$crt" -subject -nameopt RFC2253,-esc_msb) || subject="?"
    issuer=$(openssl_field "$crt" -issuer -nameopt RFC2253,-esc_msb) || issuer="?"
    serial_out=$(openssl_field "$crt" -serial) || serial_out="?"
    not_after=$(openssl_field "$crt" -enddate) || not_after="?"
    sans_text=$(openssl x509 -in "$crt" -noout -ext subjectAltName 2>/dev/null) || sans_text=
    while IFS= read -r line; do
        [[ $line == *"Subject Alternative Name"* ]] && continue
        line=${line#"${line%%[![:space:]]*}"}
        [[ -n $line ]] && sans_out+=$line
    done <<<"$sans_text"

    cat <<REPORT
Signed a $kind certificate '$name'
  private key  $key  (ECDSA $curve, PKCS#8 PEM, mode 0600; keep it secret)
  certificate  $crt
  subject      $subject
  issuer       $issuer
  serial       $serial_out
  SANs         $sans_out
  usage        digitalSignature, $eku
  signature    ecdsa-with-${digest^^}
  not after    $not_after

Check it:  openssl verify -x509_strict -CAfile $ca_crt -purpose $purpose $crt
REPORT
    if [[ $kind == server ]]; then
        printf 'Use it:    mtls-server --cert %s --key %s --ca-cert %s ...\n' "$crt" "$key" "$ca_crt"
    else
        printf 'Use it:    mtls-client --cert %s --key %s --ca-cert %s ...\n' "$crt" "$key" "$ca_crt"
    fi
}
