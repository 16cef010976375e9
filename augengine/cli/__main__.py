from augengine.cli import main

main()
