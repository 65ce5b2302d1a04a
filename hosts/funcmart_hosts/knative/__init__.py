"""The Knative host: functions-framework serving one funcmart function per Knative Service."""
