# s3-elector %post ($1: 1 install, 2 upgrade). Creates the system user and
# makes the config readable by it; reloads systemd; enables nothing.
if command -v systemd-sysusers >/dev/null 2>&1; then
  systemd-sysusers s3-elector.conf || :
elif ! getent passwd s3-elector >/dev/null; then
  useradd --system --user-group --home-dir /var/lib/s3-elector --no-create-home --shell /sbin/nologin s3-elector || :
fi
if [ -f /etc/s3-elector/s3-elector.yaml ]; then
  chgrp s3-elector /etc/s3-elector/s3-elector.yaml || :
  chmod 0640 /etc/s3-elector/s3-elector.yaml || :
fi
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || :
fi
