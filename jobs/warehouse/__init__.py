"""The warehouse side of a study: reading the interval's rows (partitions, filter,
derived columns), preparing the model frame (code, encode, bucket, cache) and the demo
warehouse with known effects."""
