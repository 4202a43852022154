"""One router per resource; the functions only translate between HTTP and :mod:`service` logic."""
