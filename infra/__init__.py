"""The CDK app that deploys one plan: a DR-region stack plus alarm-forwarding stacks.

aws_cdk is imported lazily (by ``infra.app`` and ``infra.stacks``) so the CLI starts fast and
``infra.commands`` can explain a missing ``pilotlight[infra]`` install instead of failing on import.
"""

from __future__ import annotations

import os

# jsii prints a banner on every start when Node.js is older than its newest LTS; it says nothing
# about our templates, and it would be mixed into CLI output.
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
# This one takes the list of Node.js major versions to stay quiet about.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", ",".join(str(v) for v in range(14, 40)))
os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")
