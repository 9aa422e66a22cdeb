"""Item pipelines, one job per module, in numbered order: validate -> quarantine -> store.

Pipelines know no platform: they handle the records of ``models`` whatever
spider produced them. Nor do they know the fleet: what the store stored is
announced with a signal (``signals.batch_stored``) for later stages to use.
"""
