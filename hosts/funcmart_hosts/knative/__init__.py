"""The Knative host: one ASGI server (uvicorn) serving one funcmart function per Knative Service."""
