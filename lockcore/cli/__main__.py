"""``python -m lockcore.cli``: ``lockcore``, or the editor ``kubectl lock edit`` hands to kubectl."""

import sys

from lockcore.cli import main, plugin

if sys.argv[1:2] == [plugin.EDIT_WRAPPER]:
    sys.exit(plugin.edit_wrapper(sys.argv[2:]))
sys.exit(main())
