"""The demos: ``fleetbr demo`` (:mod:`.netns`, the README's first command) and ``fleetbr demo
--distro`` (:mod:`.distro`, with :mod:`.distro_guests`). They run the product on a lab and report
what happened; they judge nothing: tests/integration/test_demo.py and
tests/integration/distro/test_demo_distro.py do (docs/lab.md, "Product, lab and demos")."""
