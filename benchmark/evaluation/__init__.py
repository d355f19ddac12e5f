"""Running a method on a dataset: `runner.run` builds the codec (`setup`), trains or loads its weights, codes every
test sample to bytes and measures each (`rows`), either in sandboxed role processes (`sandbox`, `roles`,
`sandbox_eval`, `zygote`) or in this process (`inprocess`), and writes the result. `verify` re-checks a result
from its bitstreams the same way."""
