"""Entry point Pulumi runs for ``--policy-pack policy``: ``python policy <engine address>``.

Python puts this folder first on ``sys.path``, so the rules import as ``gpu_platform_policy``.
Constructing the PolicyPack starts the SDK's gRPC server on 127.0.0.1, prints its port for the
engine and serves until the engine stops it.
"""

from gpu_platform_policy import PACK_NAME
from gpu_platform_policy.rules import build_policies
from gpu_platform_policy.values import install_secret_markers
from pulumi_policy import EnforcementLevel, PolicyPack

# Before the server starts: policies must see Pulumi secrets as secrets (values.py says why).
install_secret_markers()

PolicyPack(
    name=PACK_NAME,
    policies=build_policies(),
    enforcement_level=EnforcementLevel.ADVISORY,  # each policy sets its own level; this is the fallback
    description="gpu-platform's rules: GPU scheduling, pinned images, BuildKit secrets, protected prod data, "
                "private Kubernetes API, secrets kept secret, hardened containers.",
)
