"""The simulator: retail-leverage scenarios run in process (``scenario``) and the cascade
they leave, measured and reported (``cascade``)."""
