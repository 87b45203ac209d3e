"""Development tools of latentman that the workflow never imports.

Training of the toy model (:mod:`latentman_dev.toy`: its architecture, dataset, recipe and quality bar),
the PWG gradient study (:mod:`latentman_dev.pwg_study`) and the headless-browser driver that checks the
report (:mod:`latentman_dev.browser`). They are used by ``tools/`` and the tests; nothing under
``latentman/`` may import them (tests/test_hygiene.py).
"""
