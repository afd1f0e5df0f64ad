"""`make load`: a bounded Locust run of a realistic merchant mix against its own `ghostpay dev` (see `load.run`)."""
