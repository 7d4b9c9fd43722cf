"""Views: the kinds of training samples, one module each (plugins of the ``radiossl.views`` group).

A view says how samples are cut from a volume at preprocessing time (its sampler) and how they are
read at training time (its dataset); :class:`radiossl.views.base.View` is the plugin contract (defined
in :mod:`radiossl.data.view_contract`, below this package, where preprocessing finds it).
Built-ins: :mod:`~radiossl.views.cluster` (overlapping crop pairs), :mod:`~radiossl.views.pcrlv2`
(crop pairs plus local crops) and :mod:`~radiossl.views.genesis` (ModelsGenesis cubes).
This package imports nothing at import time; the registry loads a view when it is named.
"""
