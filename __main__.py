"""gpu-platform: wires the components together and exports the stack outputs.

Nothing here decides anything: settings are parsed (and rejected) up front, each component
owns one concern, and the outputs' names come from components.outputs (the app-team contract).
"""

from __future__ import annotations

import pulumi

from components import outputs as out
from components.cluster import GpuCluster, GpuClusterArgs
from components.model_store import ModelStore, ModelStoreArgs
from components.settings import from_pulumi_config

settings = from_pulumi_config()

cluster = GpuCluster(
    "gpu",
    GpuClusterArgs(settings=settings.cluster, name_prefix=settings.name_prefix),
)
store = ModelStore(
    "models",
    ModelStoreArgs(settings=settings.store, name_prefix=settings.name_prefix),
)

pulumi.export(out.KUBECONFIG, cluster.kubeconfig)
pulumi.export(out.CLUSTER_NAME, cluster.cluster_name)
pulumi.export(out.CLUSTER_ID, cluster.cluster_id)
pulumi.export(out.API_ENDPOINT, cluster.api_endpoint)
pulumi.export(out.REGION, settings.cluster.region)
pulumi.export(out.MODEL_BUCKET, store.bucket)
pulumi.export(out.MODEL_STORE_ENDPOINT, store.endpoint)
pulumi.export(out.MODEL_PREFIX, store.prefix)
pulumi.export(out.MODEL_NAMESPACE, settings.model_namespace)
pulumi.export(out.GPU_NODE_SELECTOR, cluster.node_selector)
pulumi.export(out.GPU_TOLERATIONS, cluster.tolerations)
