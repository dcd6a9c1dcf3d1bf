#!/usr/bin/env bash
# mkcerts.sh OUTDIR: a per-run test PKI for the fake servers, Dovecot and Postfix.
#   ca.pem ca.key                   the test CA the clients trust (ca_file)
#   server.pem server.key           localhost, 127.0.0.1, ::1, signed by the CA
#   chain.pem                       server.pem + ca.pem
#   wronghost.pem wronghost.key     signed by the CA, but for wrong.example only
#   expired.pem expired.key         localhost, signed by the CA, expired in 2021
#   selfsigned.pem selfsigned.key   localhost, self-signed
#   untrusted.pem untrusted.key     localhost, signed by another CA (other-ca.pem)
set -euo pipefail
out=${1:?usage: mkcerts.sh OUTDIR}
mkdir -p "$out"
cd "$out"
[ -s untrusted.pem ] && exit 0		# already made for this run

subj=/O=o365-unix-test
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ext() {	# ext FILE SAN
	printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' "$2" > "$1"
}
ca() {	# ca NAME CN
	key "$1.key"
	openssl req -x509 -new -key "$1.key" -sha256 -days 30 -subj "$subj/CN=$2" \
		-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
		-out "$1.pem" 2>/dev/null
}
leaf() {	# leaf NAME CANAME SAN CN
	key "$1.key"
	openssl req -new -key "$1.key" -subj "$subj/CN=$4" -out "$1.csr" 2>/dev/null
	ext "$1.ext" "$3"
	openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -sha256 \
		-days 30 -extfile "$1.ext" -out "$1.pem" 2>/dev/null
	rm -f "$1.csr" "$1.ext"
}

ca ca "o365-unix test CA"
ca other-ca "another CA"
leaf server ca "DNS:localhost,IP:127.0.0.1,IP:::1" localhost
leaf wronghost ca "DNS:wrong.example" wrong.example
leaf untrusted other-ca "DNS:localhost,IP:127.0.0.1,IP:::1" localhost
cat server.pem ca.pem > chain.pem

# expired: openssl ca lets us choose both dates
key expired.key
openssl req -new -key expired.key -subj "$subj/CN=localhost" -out expired.csr 2>/dev/null
mkdir -p ca-db
: > ca-db/index.txt
cat > ca-db/ca.cnf <<CNF
[ ca ]
default_ca = test
[ test ]
dir = ca-db
database = ca-db/index.txt
new_certs_dir = ca-db
serial = ca-db/serial
default_md = sha256
policy = any
copy_extensions = none
x509_extensions = leaf
[ any ]
commonName = supplied
[ leaf ]
basicConstraints = CA:FALSE
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1,IP:::1
CNF
echo 1000 > ca-db/serial
openssl ca -batch -config ca-db/ca.cnf -cert ca.pem -keyfile ca.key \
	-startdate 20200101000000Z -enddate 20210101000000Z -in expired.csr -out expired.pem \
	>/dev/null 2>&1
rm -rf expired.csr ca-db

key selfsigned.key
openssl req -x509 -new -key selfsigned.key -sha256 -days 30 -subj "$subj/CN=localhost" \
	-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -out selfsigned.pem 2>/dev/null
chmod 644 ./*.pem
chmod 600 ./*.key
