"""`NewInstances`: instances for a test to spawn, destroyed afterwards if the test did not."""

from __future__ import annotations

import uuid

from agent.client import ComputeClient
from schemas.objects import Flavor, ImageMeta, Instance

TINY = Flavor(flavorid="virtactor.tiny", name="virtactor.tiny", memory_mb=64, vcpus=1, root_gb=1)


class NewInstances:
    """Makes `Instance` objects to spawn on `host` from `image`, and remembers them.

    Each call returns a new instance (a fresh uuid, a unique domain name, the 64 MiB, one
    vCPU `TINY` flavor unless given another, `image` as its image). `aclose()` destroys, disks
    included, every one the host still has, whatever state the test left it in.
    """

    def __init__(self, client: ComputeClient, host: str, image: ImageMeta) -> None:
        self.client = client
        self.host = host
        self.image = image
        self.made: list[Instance] = []

    def __call__(self, *, flavor: Flavor = TINY, display_name: str = "a test guest") -> Instance:
        instance_uuid = str(uuid.uuid4())
        instance = Instance(
            uuid=instance_uuid,
            # The domain's name: unique, as other tests may share the hypervisor.
            name=f"virtactor-test-{instance_uuid[:8]}",
            display_name=display_name,
            vm_state="building",
            flavor=flavor,
            memory_mb=flavor.memory_mb,
            vcpus=flavor.vcpus,
            root_gb=flavor.root_gb,
            image_ref=self.image.id,
        )
        self.made.append(instance)
        return instance

    async def aclose(self) -> list[str]:
        """Destroy the instances made here that the host still has; returns their uuids.

        Each is destroyed even if one fails; the first error is raised after the others.
        """
        destroyed: list[str] = []
        failures: list[BaseException] = []
        for instance in self.made:
            try:
                if await self.client.instance_exists(self.host, instance.uuid):
                    await self.client.destroy(self.host, instance, destroy_disks=True)
                    destroyed.append(instance.uuid)
            except Exception as exc:  # the next instance is still destroyed
                failures.append(exc)
        self.made.clear()
        if failures:
            raise failures[0]
        return destroyed
