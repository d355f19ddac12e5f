"""What a method and a dataset agree to: the `Codec` interface and its scenarios (who sees the side view),
`Sample` and protocols, declared options and training budgets, the bitstream container every codec writes, helpers
every image codec needs (padding, bit-exact threads), the registry that finds methods and datasets through entry
points, and the small seeded input every registered codec is checked on (`conformance`)."""
