# --8<-- [start:serve]
DIR=$(mktemp -d)
lxd-fake serve --dir "$DIR" &
FAKE=$!
trap 'kill "$FAKE" 2>/dev/null || true; wait; rm -rf "$DIR"' EXIT

# Wait for the socket: at most 10 s, and give up at once if lxd-fake exited (its error is
# on stderr).
for _ in $(seq 100); do
    [ -S "$DIR/unix.socket" ] && break
    kill -0 "$FAKE" 2>/dev/null || { echo "lxd-fake serve failed" >&2; exit 1; }
    sleep 0.1
done
[ -S "$DIR/unix.socket" ] || { echo "lxd-fake serve did not start in 10 s" >&2; exit 1; }

export LXD_DIR="$DIR"  # lxc talks to $LXD_DIR/unix.socket
lxc profile list --format csv
lxc storage volume create default data
lxc storage volume list default --format csv
# --8<-- [end:serve]
lxc storage volume list default --format csv | grep -q '^custom,data,'
