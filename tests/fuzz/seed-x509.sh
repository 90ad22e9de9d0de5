#!/bin/sh
# Make the seed corpus of fuzz_x509 (committed in tests/fuzz/corpus/fuzz_x509; rerun only to
# refresh it): certificates, keys, PKCS#12 files and RSAKeyValue XML in every form t2t loads.
# Each seed starts with the byte that picks the loader (see fuzz_x509.c).
set -e
OUT=$(cd "$(dirname "$0")" && pwd)/corpus/fuzz_x509
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
mkdir -p "$OUT"
cd "$W"
openssl req -x509 -newkey rsa:1024 -nodes -keyout rsa.key -out rsa.pem -days 2 -subj /CN=t2t-fuzz \
  -addext subjectAltName=DNS:a.example,IP:127.0.0.1 2>/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ec.key -out ec.pem -days 2 \
  -subj "/CN=t2t fuzz EC/O=t2t" 2>/dev/null
openssl genpkey -algorithm ed25519 -out ed.key 2>/dev/null
openssl x509 -in rsa.pem -outform der -out rsa.der
openssl pkey -in rsa.key -aes-128-cbc -passout pass:pw -out rsa-enc.key
openssl pkey -in rsa.key -pubout -out rsa.pub
openssl rsa -in rsa.key -traditional -out rsa-trad.key 2>/dev/null
openssl pkcs12 -export -inkey rsa.key -in rsa.pem -passout pass:pw -out pw.pfx
openssl pkcs12 -export -inkey ec.key -in ec.pem -passout pass: -out empty.pfx
cat rsa.key rsa.pem ec.pem > bundle.pem
base64 -w0 pw.pfx > pw.pfx.b64
n=$(openssl rsa -in rsa.key -noout -modulus | sed 's/Modulus=//' | xxd -r -p | base64 -w0)
printf '<RSAKeyValue><Modulus>%s</Modulus><Exponent>AQAB</Exponent></RSAKeyValue>' "$n" > key.xml
seed() { printf "\\$(printf %03o "$1")" > "$OUT/$3"; cat "$2" >> "$OUT/$3"; }
seed 0 rsa.pem cert-rsa-pem;     seed 0 rsa.der cert-rsa-der;   seed 1 bundle.pem certs-bundle
seed 2 rsa.key key-rsa-pkcs8;    seed 2 ec.key key-ec;          seed 2 ed.key key-ed25519
seed 2 rsa-trad.key key-rsa-trad; seed 2 rsa.pub key-public;    seed 3 rsa-enc.key key-encrypted
seed 4 pw.pfx pfx-pw;            seed 5 empty.pfx pfx-empty;    seed 6 bundle.pem credential-pem
seed 6 pw.pfx credential-pfx;    seed 7 pw.pfx.b64 pfx-base64;  seed 8 key.xml rsakeyvalue
seed 9 rsa.pub public-key-from
