#!/usr/bin/env bash
# Development TLS material for the commented TLS examples in docker-compose.yml: a throw-away CA, a
# Kafka broker keystore and a ClickHouse server certificate, written to deploy/secrets/ (git-ignored).
# For production, issue the same files from your own CA; the names are what docker-compose.yml mounts.
#
#   deploy/make-dev-certs.sh [OUT_DIR]     # default: deploy/secrets
#
# ca.pem                    the CA clients verify against (CLIENTPULSE_KAFKA_SSL_CAFILE, CLIENTPULSE_CLICKHOUSE_CA_CERT)
# kafka.keystore.p12        broker certificate for the host name "kafka" (and localhost), PKCS12
# kafka_keystore_creds      its password, read by the apache/kafka image (also kafka_ssl_key_creds)
# clickhouse.crt/.key       server certificate for the host name "clickhouse" (and localhost)
set -euo pipefail

out="${1:-$(dirname "$0")/secrets}"
days=825
mkdir -p "$out"
cd "$out"
umask 077
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)

openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.pem -days "$days" -subj "/CN=clientpulse development CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

issue() {  # issue NAME SUBJECT_ALT_NAMES
    openssl req "${ec[@]}" -keyout "$1.key" -out "$1.csr" -subj "/CN=$1" 2>/dev/null
    printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\nauthorityKeyIdentifier=keyid\n' \
        "$2" >"$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -out "$1.crt" -days "$days" \
        -extfile "$1.ext" 2>/dev/null
    rm "$1.csr" "$1.ext"
}
issue kafka "DNS:kafka,DNS:localhost"
issue clickhouse "DNS:clickhouse,DNS:localhost"

# The apache/kafka image reads the keystore's password from files next to it (/etc/kafka/secrets).
openssl rand -hex 24 | tr -d '\n' >kafka_keystore_creds
cp kafka_keystore_creds kafka_ssl_key_creds
openssl pkcs12 -export -in kafka.crt -inkey kafka.key -certfile ca.pem -name kafka \
    -out kafka.keystore.p12 -passout file:kafka_keystore_creds

# The servers run as other users inside their containers: the files they read must be readable.
# Development only; keep production keys readable by the server's user alone.
chmod 644 ca.pem kafka.crt clickhouse.crt clickhouse.key kafka.keystore.p12 kafka_keystore_creds kafka_ssl_key_creds
echo "wrote $(pwd): ca.pem kafka.keystore.p12 kafka_keystore_creds kafka_ssl_key_creds clickhouse.crt clickhouse.key"
