"""Events: the bus that carries them between components and instances."""
