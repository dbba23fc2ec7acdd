import IptauditCommands

await IptauditCommand.main()
