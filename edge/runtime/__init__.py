"""The device runtime: the validated config, the components it builds, the bounded queues and the
threaded pipeline that runs them."""
