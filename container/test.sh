#!/usr/bin/env bash
# Builds the real image and checks it as a container: first start, the API and the admin UI
# through Caddy, a TLS site with Caddy's internal CA on 443 (Caddy as a user without root),
# `kill -9` of the proxy under traffic, a config saved through the admin API, the health check,
# a clean stop, and a new container on the same data dir keeping config, statistics and
# certificate; then blob persistence mode against Azurite on the host (when `azurite-blob` is
# installed): the blob created from the data dir's config, a save reaching the blob, a save while
# Blob is down kept locally and pushed when it is back. Takes minutes; not part of CI (which runs
# the same checks without a container engine: stack-tests/, and the blob tests of proxy and
# control). Prints the image size, build time and start-up time.
#
#   container/test.sh                 podman (or ENGINE=docker), image aoai-gateway:test
#
# Environment: ENGINE (podman), IMAGE (aoai-gateway:test), BUILD_FLAGS (extra build flags; for
# podman, "--isolation chroot" where the host needs it), KEEP=1 keeps the data dir.
# The container runs with the host's network, so ports 3000, 443, 2019, 3001, 3002 and 3003
# must be free; a fake Foundry upstream (the fake-foundry binary) runs on the host.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
engine="${ENGINE:-podman}"
image="${IMAGE:-aoai-gateway:test}"
name="aoai-gateway-test"
fake_port=18600
work="$(mktemp -d)"
data="$work/data"
mkdir -p "$data"
key="CHANGEME"

log() { printf '[container-test %s] %s\n' "$(date +%T)" "$*"; }
fail() { log "FAILED: $*"; "$engine" logs "$name" 2>&1 | tail -40 || true; exit 1; }
now_ms() { date +%s%3N; }
cleanup() {
    "$engine" rm -f -t 5 "$name" >/dev/null 2>&1 || true
    [ -n "${fake_pid:-}" ] && kill "$fake_pid" 2>/dev/null || true
    [ -n "${azurite_pid:-}" ] && kill "$azurite_pid" 2>/dev/null || true
    [ "${KEEP:-0}" = 1 ] && log "data dir kept: $data" || rm -rf "$work"
}
trap cleanup EXIT

# Waits up to $1 seconds for a command to succeed.
wait_for() {
    local limit=$1; shift
    local until=$(( $(date +%s) + limit ))
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$until" ] || return 1
        sleep 0.1
    done
}
http_status() { curl -s -o /dev/null -w '%{http_code}' -m 5 "$@"; }
ready() {
    [ "$(http_status http://127.0.0.1:3000/healthz)" = 200 ] &&
        [ "$(http_status http://127.0.0.1:3000/admin/)" = 401 ]
}
chat() {
    curl -s -m 10 -o /dev/null -w '%{http_code}' http://127.0.0.1:3000/v1/chat/completions \
        -H "authorization: Bearer $key" -H 'content-type: application/json' \
        -d "{\"model\":\"$1\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"
}
chat_ok() { [ "$(chat "$1")" = 200 ]; }
run_container() {
    "$engine" run -d --name "$name" --network host -v "$data:/app/data" \
        -e CADDY_TLS=internal -e SHUTDOWN_GRACE_SECS=8 "$@" "$image" >/dev/null
}
supervisorctl() { "$engine" exec "$name" supervisorctl "$@"; }
served_fingerprint() {
    openssl s_client -connect 127.0.0.1:443 -servername gateway.test </dev/null 2>/dev/null |
        openssl x509 -noout -fingerprint -sha256
}
tls_ok() {
    curl -sf -m 5 -o /dev/null --cacert "$data/caddy/pki/authorities/local/root.crt" \
        --resolve gateway.test:443:127.0.0.1 https://gateway.test/v1/models \
        -H "authorization: Bearer $key"
}
total_requests() { python3 -c 'import json,sys; print(json.load(sys.stdin)["total"]["requests"])'; }

log "building $image"
build_start=$(now_ms)
# shellcheck disable=SC2086
"$engine" build --format docker ${BUILD_FLAGS:-} --network host -t "$image" "$root"
build_ms=$(( $(now_ms) - build_start ))
size=$("$engine" image inspect --format '{{.Size}}' "$image")

cargo build --release --quiet -p fake-foundry --manifest-path "$root/Cargo.toml"
"${CARGO_TARGET_DIR:-$root/target}/release/fake-foundry" --port "$fake_port" >"$work/fake.log" 2>&1 &
fake_pid=$!

log "first start on an empty data dir"
"$engine" rm -f "$name" >/dev/null 2>&1 || true
start=$(now_ms)
run_container
wait_for 60 ready || fail "the container never became ready"
startup_ms=$(( $(now_ms) - start ))
grep -q YOUR-RESOURCE-NAME "$data/config.json" || fail "config.json was not created from the example"
for program in caddy proxy control; do
    pid=$(supervisorctl pid "$program")
    uid=$("$engine" exec "$name" awk '/^Uid:/ {print $2}' "/proc/$pid/status")
    [ "$uid" != 0 ] || fail "$program runs as root"
    log "$program runs as uid $uid"
done
proxy_logged() { "$engine" logs "$name" 2>&1 | grep -q '^proxy   | {'; }
wait_for 10 proxy_logged || fail "no proxy lines in the container log"
"$engine" healthcheck run "$name" || fail "the health check failed"

log "pointing the config at the fake upstream, with a TLS site and an admin password"
python3 - "$data/config.json" "$fake_port" <<'PY'
import json, sys
path, port = sys.argv[1], int(sys.argv[2])
config = json.load(open(path))
config["upstreams"][0]["baseUrl"] = f"http://127.0.0.1:{port}"
config["auth"] = {"mode": "apiKey", "apiKey": "upstream-secret"}
config["server"]["caddy"].update({"enabled": True, "domain": "gateway.test", "httpsPort": 443})
config["server"]["adminAuth"]["password"] = "container-test-password"
json.dump(config, open(path + ".new", "w"), indent=2)
PY
mv "$data/config.json.new" "$data/config.json"
wait_for 20 chat_ok gpt-5-mini || fail "the hand-edited config was not applied"
stream=$(curl -s -m 10 http://127.0.0.1:3000/v1/chat/completions -H "authorization: Bearer $key" \
    -H 'content-type: application/json' \
    -d '{"model":"gpt-5-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}')
[ "$(printf '%s\n' "$stream" | grep -v '^$' | tail -n 1)" = "data: [DONE]" ] || fail "stream: $stream"
wait_for 30 tls_ok || fail "the TLS site on 443 never served"
fingerprint=$(served_fingerprint)

log "kill -9 of the proxy under traffic"
failed=0 total=0
( for _ in $(seq 1 300); do chat gpt-5-mini; echo; sleep 0.02; done ) >"$work/traffic" &
traffic=$!
sleep 1
old=$(supervisorctl pid proxy)
"$engine" exec "$name" sh -c "kill -9 $old"
killed=$(now_ms)
wait_for 30 sh -c "[ \"\$($engine exec $name supervisorctl pid proxy)\" != \"$old\" ]" ||
    fail "the proxy was not restarted"
wait_for 30 chat_ok gpt-5-mini || fail "no traffic after the restart"
recovered_ms=$(( $(now_ms) - killed ))
wait "$traffic"
total=$(grep -c . "$work/traffic")
failed=$(grep -vc '^200$' "$work/traffic" || true)
log "proxy back after ${recovered_ms} ms; $failed of $total requests failed meanwhile"

log "a config saved through the admin API"
admin=(-s -m 10 -u admin:container-test-password -H 'x-requested-with: container-test' -H 'origin: http://127.0.0.1:3000')
curl "${admin[@]}" -D "$work/headers" http://127.0.0.1:3000/admin/api/config >"$work/config.get"
python3 - "$work/config.get" >"$work/config.put" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))["config"]
config["models"].append({"id": "saved-model", "upstream": "foundry", "targetModel": "saved-deployment"})
print(json.dumps(config))
PY
etag=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["etag"])' "$work/config.get")
status=$(curl "${admin[@]}" -o "$work/config.saved" -w '%{http_code}' -X PUT -H "if-match: $etag" \
    -H 'content-type: application/json' --data-binary @"$work/config.put" \
    http://127.0.0.1:3000/admin/api/config)
[ "$status" = 200 ] || fail "save answered $status: $(cat "$work/config.saved")"
wait_for 10 chat_ok saved-model || fail "the saved model is not served"
before=$(curl "${admin[@]}" http://127.0.0.1:3000/admin/api/stats | total_requests)

log "stop, and a new container on the same data dir"
stop_start=$(now_ms)
"$engine" stop -t 30 "$name" >/dev/null
stop_ms=$(( $(now_ms) - stop_start ))
"$engine" logs "$name" 2>&1 | grep -q 'stopped: proxy (exit status 0)' || fail "the proxy did not stop cleanly"
[ "$(total_requests <"$data/stats.json")" -ge "$before" ] || fail "stats.json misses requests"
"$engine" rm "$name" >/dev/null
start=$(now_ms)
run_container
wait_for 60 ready || fail "the new container never became ready"
restart_ms=$(( $(now_ms) - start ))
chat_ok saved-model || fail "the saved config is gone"
after=$(curl "${admin[@]}" http://127.0.0.1:3000/admin/api/stats | total_requests)
[ "$after" -gt "$before" ] || fail "statistics restarted ($after after $before)"
wait_for 30 tls_ok || fail "the TLS site did not come back"
[ "$(served_fingerprint)" = "$fingerprint" ] || fail "a new certificate after the restart"

log "a data dir owned by another user, as a host directory bind-mounted by docker compose"
"$engine" stop -t 30 "$name" >/dev/null && "$engine" rm "$name" >/dev/null
data="$work/host-dir"
mkdir -p "$data" && chown 4242:4242 "$data"
run_container
wait_for 60 ready || fail "not ready on a data dir owned by uid 4242"
pid=$(supervisorctl pid proxy)
[ "$("$engine" exec "$name" awk '/^Uid:/ {print $2}' "/proc/$pid/status")" = 4242 ] ||
    fail "the programs do not run as the data dir's owner"
[ "$(stat -c %u "$data/config.json")" = 4242 ] || fail "config.json is not the data dir owner's"

if command -v azurite-blob >/dev/null 2>&1; then
    log "blob mode: the config in Azurite on the host"
    "$engine" stop -t 30 "$name" >/dev/null && "$engine" rm "$name" >/dev/null
    blob_port=10010
    start_azurite() {
        azurite-blob --blobHost 127.0.0.1 --blobPort "$blob_port" --location "$work/azurite" \
            --skipApiVersionCheck --loose --silent >>"$work/azurite.log" 2>&1 &
        azurite_pid=$!
        wait_for 30 bash -c "exec 3<>/dev/tcp/127.0.0.1/$blob_port" || fail "Azurite did not start"
    }
    start_azurite
    # An account SAS signed with the emulator's published key.
    sas=$(python3 - <<'PY'
import base64, hashlib, hmac, urllib.parse
key = base64.b64decode("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==")
fields = ["devstoreaccount1", "rwdlac", "b", "sco", "", "2099-01-01T00:00:00Z", "", "https,http", "2019-12-12", ""]
sig = base64.b64encode(hmac.new(key, "\n".join(fields).encode(), hashlib.sha256).digest()).decode()
q = urllib.parse.quote
print(f"sv=2019-12-12&ss=b&srt=sco&sp=rwdlac&se={q('2099-01-01T00:00:00Z', safe='')}&spr={q('https,http', safe='')}&sig={q(sig, safe='')}")
PY
)
    blob_url="http://127.0.0.1:$blob_port/devstoreaccount1/gateway/config/config.json?$sas"
    blob_has() { curl -sf -m 5 "$blob_url" | grep -q "$1"; }
    first_config="$work/data/config.json"
    data="$work/blob-data"
    mkdir -p "$data" && cp "$first_config" "$data/config.json"
    run_container -e PERSISTENCE_MODE=blob \
        -e AZURE_STORAGE_ACCOUNT_URL="http://127.0.0.1:$blob_port/devstoreaccount1" \
        -e AZURE_STORAGE_SAS_TOKEN="$sas" -e BLOB_POLL_MS=1000 -e BLOB_RECOVERY_INTERVAL_MS=1000
    wait_for 60 ready || fail "not ready in blob mode"
    wait_for 20 blob_has saved-model || fail "the blob was not created from the data dir's config"
    chat_ok saved-model || fail "the blob's config is not served"
    save_with_model() {
        curl "${admin[@]}" http://127.0.0.1:3000/admin/api/config >"$work/blob.get"
        python3 - "$work/blob.get" "$1" >"$work/blob.put" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))["config"]
config["models"].append({"id": sys.argv[2], "upstream": "foundry", "targetModel": sys.argv[2]})
print(json.dumps(config))
PY
        local tag
        tag=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["etag"])' "$work/blob.get")
        curl "${admin[@]}" -o /dev/null -w '%{http_code}' -X PUT -H "if-match: $tag" \
            -H 'content-type: application/json' --data-binary @"$work/blob.put" \
            http://127.0.0.1:3000/admin/api/config
    }
    [ "$(save_with_model blob-model)" = 200 ] || fail "a save in blob mode failed"
    wait_for 10 blob_has blob-model || fail "the save did not reach the blob"
    wait_for 10 chat_ok blob-model || fail "the saved model is not served in blob mode"
    log "Blob down: a save is kept locally, then pushed"
    kill "$azurite_pid" && wait "$azurite_pid" 2>/dev/null || true
    blob_down() { curl -s "${admin[@]}" http://127.0.0.1:3000/admin/api/status | grep -q blob_unreachable; }
    wait_for 30 blob_down || fail "control did not notice Blob down"
    [ "$(save_with_model offline-model)" = 200 ] || fail "a save while Blob is down failed"
    wait_for 10 chat_ok offline-model || fail "the change saved while Blob is down is not served"
    start_azurite
    wait_for 30 blob_has offline-model || fail "the change saved while Blob was down was not pushed"
    log "blob mode checks passed"
else
    log "skipping the blob-mode run: azurite-blob is not installed (npm install -g azurite)"
fi

log "all checks passed"
cat <<REPORT
image:          $image, $(( size / 1000000 )) MB
build time:     $(( build_ms / 1000 )) s
start-up:       ${startup_ms} ms on an empty data dir, ${restart_ms} ms for the new container (run to /healthz and /admin through Caddy)
proxy kill -9:  back after ${recovered_ms} ms; ${failed} of ${total} requests failed
stop:           ${stop_ms} ms (podman stop)
REPORT
