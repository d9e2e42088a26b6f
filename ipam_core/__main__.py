from ipam_core.cli import main

main()
