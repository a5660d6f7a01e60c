"""ModelStore: the Civo Object Store bucket that caches Hugging Face models, and its credential.

The credential is created explicitly (instead of letting the store make one) so its secret
key is ours to hand to the cluster; the provider does not mark that key secret, so it is
wrapped here. In prod the bucket holds data worth keeping: it is protected and retained.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_civo as civo

from components.config import catalog
from components.config.types import StoreSettings


@dataclass(frozen=True)
class ModelStoreArgs:
    settings: StoreSettings
    name_prefix: str


class ModelStore(pulumi.ComponentResource):
    """An S3-compatible bucket plus the access key pair the model-cache uses."""

    bucket: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    access_key_id: pulumi.Output[str]
    secret_access_key: pulumi.Output[str]
    prefix: str
    region: str

    def __init__(self, name: str, args: ModelStoreArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("gpu-platform:index:ModelStore", name, None, opts)
        s = args.settings
        data_opts = pulumi.ResourceOptions(parent=self, protect=s.protect, retain_on_delete=s.protect)

        self.credential = civo.ObjectStoreCredential(
            f"{name}-credential",
            name=f"{args.name_prefix}-models",
            region=s.region,
            opts=pulumi.ResourceOptions.merge(
                data_opts, pulumi.ResourceOptions(additional_secret_outputs=["secretAccessKey"])
            ),
        )
        self.store = civo.ObjectStore(
            f"{name}-bucket",
            name=f"{args.name_prefix}-models",
            region=s.region,
            max_size_gb=s.max_size_gb,
            access_key_id=self.credential.access_key_id,
            opts=data_opts,
        )

        self.bucket = self.store.name
        self.endpoint = self.store.bucket_url.apply(lambda url: normalise_endpoint(url, s.region))
        self.access_key_id = pulumi.Output.secret(self.credential.access_key_id)
        self.secret_access_key = pulumi.Output.secret(self.credential.secret_access_key)
        self.prefix = s.model_prefix
        self.region = s.region
        self.register_outputs({
            "bucket": self.bucket,
            "endpoint": self.endpoint,
            "prefix": self.prefix,
            "accessKeyId": self.access_key_id,
            "secretAccessKey": self.secret_access_key,
        })


def normalise_endpoint(bucket_url: str | None, region: str) -> str:
    """The S3 endpoint URL (scheme + host) from the store's ``bucket_url``.

    Civo returns a bare host (``objectstore.lon1.civo.com``) or, in older API versions, a URL
    with the bucket in its path; S3 clients want ``https://host`` and the bucket apart.
    """
    if not bucket_url:
        return catalog.object_store_endpoint(region)
    url = bucket_url if "://" in bucket_url else f"https://{bucket_url}"
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0]
    return f"{scheme}://{host}"
