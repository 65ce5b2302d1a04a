"""API Gateway and event-source emulation: what AWS does before and after a function runs,
for the hosts that have no AWS in front of them (the local platform and the Knative host)."""
