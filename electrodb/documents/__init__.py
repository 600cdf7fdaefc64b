"""The schemas every layer agrees on: property, trajectory and solvation documents, and the registry that describes
each property and collection (:mod:`.registry`)."""
