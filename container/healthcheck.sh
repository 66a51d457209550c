#!/bin/bash
# The image's HEALTHCHECK: GET /healthz through Caddy's HTTP port, so it fails when either Caddy
# or the proxy does not answer. /healthz needs no client key.
exec 3<>"/dev/tcp/127.0.0.1/${CADDY_HTTP_PORT:-3000}" || exit 1
printf 'GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
IFS= read -r -t 5 status <&3 || exit 1
case "$status" in
    "HTTP/1."?" 200 "*) exit 0 ;;
    *) echo "healthz: ${status:-no answer}"; exit 1 ;;
esac
