"""functions-framework's source file: the Knative adapter's two targets, for every function.

`http` serves HTTP functions and `cloudevent` serves queue consumers and schedules; which
function runs is chosen by the environment (see funcmart_hosts.knative.host).
"""

from funcmart_hosts.knative.host import cloudevent, http

__all__ = ["cloudevent", "http"]
