"""Import this module (e.g. `pytest -p tests.enable_gpu`) to run the tests on a GPU."""

from thinc.api import require_gpu

require_gpu()
