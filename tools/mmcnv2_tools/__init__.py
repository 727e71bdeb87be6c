"""What the tools do, for the tools (``tools/*.py``) to run: the benchmarks, the demos, the
accuracy-per-FLOP comparison, the paper's tables and the model index.

These need a checkout of mmcnv2 (its ``configs/`` and ``demo_data/``); the ``mmcnv2``
package holds what they use that works anywhere: the model forms, the paper's counter
(:mod:`mmcnv2.analysis.complexity`), the timers (:mod:`mmcnv2.analysis.timing`), the
connection strengths. A tool finds this package beside it (``tools/`` is the script's
folder); the tests add ``tools/`` to ``sys.path`` (``pytest.ini``).
"""
