import ArgumentParser

public struct IptauditCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(commandName: "iptaudit")
    public init() {}
}
