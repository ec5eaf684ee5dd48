# --8<-- [start:serve]
DIR=$(mktemp -d)
lxd-fake serve --dir "$DIR" &
trap 'kill $!; wait; rm -rf "$DIR"' EXIT
while [ ! -S "$DIR/unix.socket" ]; do sleep 0.1; done

export LXD_DIR="$DIR"  # lxc talks to $LXD_DIR/unix.socket
lxc profile list --format csv
lxc storage volume create default data
lxc storage volume list default --format csv
# --8<-- [end:serve]
lxc storage volume list default --format csv | grep -q '^custom,data,'
