# s3-elector %preun ($1: 0 erase, 1 upgrade). On erase, stop the service
# (a graceful stop: the lease is released).
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
  systemctl stop s3-elector.service >/dev/null 2>&1 || :
fi
