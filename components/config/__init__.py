"""Everything that reads and checks configuration, and nothing that registers a resource.

- ``settings``: the stack's keys, parsed once into the frozen types (the only parser entry point);
- ``models``: the ``models`` list, parsed for ``settings``;
- ``reader``: the one problem-collecting reader both use;
- ``types``: the frozen dataclasses components receive (resource modules import only these);
- ``images``: the platform's images, platforms, image keys and BuildKit secret ids;
- ``catalog``: what Civo offers (regions, sizes, versions);
- ``patterns``: name patterns written once;
- ``outputs``: the stack-output contract with app teams.
"""
