# s3-elector %preun ($1: 0 erase, 1 upgrade). On erase, disable the service
# (a later reinstall must not start it at boot) and stop it (a graceful
# stop: the lease is released).
if [ "$1" -eq 0 ]; then
  systemctl --no-reload disable s3-elector.service >/dev/null 2>&1 || :
  for link in /etc/systemd/system/*.wants/s3-elector@*.service; do
    [ -e "$link" ] || [ -L "$link" ] || continue
    systemctl --no-reload disable "$(basename "$link")" >/dev/null 2>&1 || :
  done
  if [ -d /run/systemd/system ]; then
    systemctl stop s3-elector.service 's3-elector@*.service' >/dev/null 2>&1 || :
  fi
fi
