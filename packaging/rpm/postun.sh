# s3-elector %postun ($1: 0 erase, 1 upgrade). On upgrade, restart a running
# service and every running s3-elector@ instance gracefully (each releases
# its lease and wakes its successor); on erase, remove the state and runtime
# directories. The system user stays (files it owned must never pass to a
# later user that reuses its uid).
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || :
  if [ "$1" -ge 1 ]; then
    systemctl try-restart s3-elector.service 's3-elector@*.service' >/dev/null 2>&1 || :
  fi
fi
if [ "$1" -eq 0 ]; then
  rm -rf /var/lib/s3-elector /run/s3-elector /run/s3-elector-*
  # Directories the package's files lived in (the rpm records files only);
  # a config you changed stays, as .rpmsave, and so does its directory.
  rmdir /etc/s3-elector /usr/share/doc/s3-elector /usr/share/licenses/s3-elector 2>/dev/null || :
fi
