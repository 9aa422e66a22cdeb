"""Item pipelines, one job per module, in numbered order: validate -> quarantine -> store.

Pipelines know no platform: they handle the records of ``models`` whatever
spider produced them.
"""
