#!/usr/bin/env bash
# Regenerates the sample events in this directory with the SAM CLI's own generator
# (`make sam-events`; the SAM CLI lives in .venv-sam, see the Makefile's sam-build).
set -euo pipefail
cd "$(dirname "$0")"
sam="${SAM:-../../../.venv-sam/bin/sam}"
export SAM_CLI_TELEMETRY=0
"$sam" --version > sam-version.txt
"$sam" local generate-event apigateway http-api-proxy > apigateway-http-api-proxy.json
"$sam" local generate-event apigateway aws-proxy > apigateway-aws-proxy.json
"$sam" local generate-event sqs receive-message > sqs-receive-message.json
"$sam" local generate-event cloudwatch scheduled-event > eventbridge-scheduled.json
