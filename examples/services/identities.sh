#!/bin/sh
# Identities for the example services and for you, all under DIR (default .services), for one machine
# where everything listens on 127.0.0.1:
#   DIR/lclstream-api/identity  LCLStream-API's (P-256: it also signs the data streams' certificates)
#   DIR/psik-api/identity       Psik-API's
#   DIR/USER                    yours (USER defaults to your login name), introduced to both services
#                               with the aliases `lclstream` (https://127.0.0.1:8443) and `psik` (:8445)
# Run from the repository root with the venv's commands on PATH:  examples/services/identities.sh
# Then:  export CERTIFIED_CONFIG=$PWD/.services/$USER  (the lclstream and certified commands use it)
# Existing identities are kept, so running it again only adds what is missing.
set -eu
dir=${1:-.services}
user=${2:-${USER:-$(id -un)}}

init() {  # init NAME DIR [OPTIONS]: an identity, unless DIR has one
    name=$1; where=$2; shift 2
    if [ -f "$where/id.crt" ]; then echo "kept $where ($name)"; else certified init "$name" --config "$where" "$@"; fi
}

init lclstream-api "$dir/lclstream-api/identity" --key-type p256 --host 127.0.0.1 --host localhost
init psik-api "$dir/psik-api/identity" --host 127.0.0.1 --host localhost
init "$user" "$dir/$user"
for service in lclstream:lclstream-api:8443 psik:psik-api:8445; do
    alias=${service%%:*}; rest=${service#*:}; server=${rest%%:*}; port=${rest#*:}
    certified introduce "$dir/$user/id.crt" --config "$dir/$server/identity" --name "$user" \
        --service "$alias=https://127.0.0.1:$port" -o "$dir/$user/$alias.intro.json"
    certified add-intro "$dir/$user/$alias.intro.json" --config "$dir/$user"
done
echo "export CERTIFIED_CONFIG=$PWD/$dir/$user"
