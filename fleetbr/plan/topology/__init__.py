"""Planning uplink topologies (issue 17): the capability matrix, the runtime tier's steps, the
expected state and its comparison. A task without a topology never reaches this package."""
