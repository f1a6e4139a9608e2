"""Lambda handlers, one module per AWS service. Standard library and boto3 only.

Every module exposes ``handler(event, context)``; the event names an ``action`` registered in
that module with :func:`lambdas.common.action`, which also declares the IAM actions it needs.
"""
