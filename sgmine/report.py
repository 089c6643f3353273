"""The old name of :mod:`sgmine.table` (the scan's CSV/JSON results table), kept for code
that imports it: ``import sgmine.report`` gives that very module, so ``from sgmine.report
import atomic_write, render, ...`` and monkeypatching its attributes keep working.
"""

import sys

from sgmine import table

sys.modules[__name__] = table
