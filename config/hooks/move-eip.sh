#!/bin/sh
# on_acquired hook: associate an Elastic IP with this instance.
# Usage: move-eip.sh ALLOCATION_ID   (S3_ELECTOR_* variables come from s3-elector)
# Needs the AWS CLI and ec2:AssociateAddress; IMDSv2 gives the instance id.
set -eu
alloc=${1:?usage: move-eip.sh ALLOCATION_ID}
token=$(curl -fsS -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://169.254.169.254/latest/api/token)
instance=$(curl -fsS -H "X-aws-ec2-metadata-token: $token" http://169.254.169.254/latest/meta-data/instance-id)
echo "term $S3_ELECTOR_TERM: moving $alloc to $instance"
aws ec2 associate-address --allocation-id "$alloc" --instance-id "$instance" --allow-reassociation
