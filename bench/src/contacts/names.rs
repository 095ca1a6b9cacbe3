//! Names of the generated read model of `bench contacts`: Portuguese and English first names and
//! surnames, combined at random, so a prefix like `mar` matches thousands of contacts (Maria,
//! Mariana, Marco, Marques, Martins, Amaral…), as it would in a real address book.

/// About 200 first names, separated by whitespace.
pub const FIRST: &str = "
    Maria Ana Mariana Beatriz Inês Sofia Leonor Matilde Carolina Margarida Francisca Lara Rita
    Joana Catarina Marta Sara Teresa Isabel Helena Luísa Madalena Alice Clara Carla Cristina
    Daniela Diana Filipa Patrícia Paula Raquel Sandra Sónia Susana Vera Andreia Cláudia Marisa
    Mafalda Gabriela Rosa Lúcia Fernanda Graça Irene Olga Célia Mónica Tânia Vânia Liliana Márcia
    Adriana Bárbara Natália Juliana Yara Joaquina Amália Benedita Constança Eva Laura Íris
    João José António Francisco Manuel Pedro Miguel Tiago Rui Luís Carlos Paulo Jorge Ricardo
    Nuno André Bruno Diogo Duarte Gonçalo Rodrigo Afonso Tomás Martim Santiago Guilherme Henrique
    Gustavo Rafael Vasco Salvador Simão Lourenço Mário Marco Marcos Marcelo Fernando Filipe Hugo
    Sérgio Vítor Alexandre Artur Bernardo Daniel David Eduardo Fábio Gabriel Joaquim Leonardo
    Lucas Mateus Norberto Óscar Renato Samuel Valter Xavier Armando Abel Adriano Álvaro Augusto
    Raul Olivia Emma Amelia Isla Ava Mia Ivy Lily Isabella Rosie Sophia Grace Freya Ella Evie
    Poppy Charlotte Florence Willow Emily Jessica Hannah Lucy Chloe Megan Lauren Rebecca Sarah
    Amy Mary Margaret Marie Martha Harriet Abigail Eleanor Victoria Elizabeth Jennifer Karen
    Oliver George Noah Arthur Harry Leo Jack Charlie Oscar Jacob Henry Thomas Freddie Alfie Theo
    William Archie Joshua James Isaac Edward Tommy Finley Max Logan Ethan Mason Mark Martin
    Matthew Michael Peter Richard Robert Stephen Andrew Anthony Christopher Simon Ian Graham
    Neil Colin Gareth Owen Rhys Callum Jamie Ryan Liam Connor Kieran Dylan Aaron Adam
";

/// About 500 surnames, separated by whitespace.
pub const LAST: &str = "
    Silva Santos Ferreira Pereira Oliveira Costa Rodrigues Martins Jesus Sousa Fernandes
    Gonçalves Gomes Lopes Marques Alves Almeida Ribeiro Pinto Carvalho Teixeira Moreira Correia
    Mendes Nunes Soares Vieira Monteiro Cardoso Rocha Raposo Neves Coelho Cruz Cunha Pires Ramos
    Reis Simões Antunes Matos Fonseca Machado Araújo Barbosa Tavares Lourenço Castro Figueiredo
    Azevedo Freitas Henriques Lima Guerreiro Baptista Amaral Pacheco Campos Miranda Loureiro
    Cabral Faria Batista Nogueira Sá Morais Valente Leite Sequeira Barros Domingues Vaz Magalhães
    Brito Abreu Borges Paiva Rebelo Pinheiro Esteves Andrade Dias Moura Melo Branco Torres
    Cordeiro Macedo Vicente Guimarães Salgado Ventura Serrano Sampaio Bento Carneiro Calado Leal
    Fontes Figueira Pestana Pimentel Mota Frade Brandão Cabrita Sardinha Garcia Fialho Gaspar
    Nascimento Bastos Paixão Anjos Peixoto Couto Franco Louro Meireles Quintela Prates Quaresma
    Marinho Matias Sobral Lacerda Portela Pedrosa Patrício Mourão Madeira Estrela Barroso Bessa
    Bettencourt Bragança Caldeira Camacho Canelas Carrilho Casimiro Conceição Cotrim Damasceno
    Dantas Encarnação Falcão Farinha Feijó Félix Ferraz Ferro Frazão Furtado Galvão Garrido Gil
    Godinho Gouveia Grilo Inácio Jardim Lobo Luz Maia Malheiro Mascarenhas Medeiros Meneses
    Mesquita Mira Moniz Montenegro Morgado Neto Noronha Novais Ornelas Paredes Passos Penha
    Pessoa Pinho Ponte Queirós Rangel Rego Resende Ribas Rosário Salazar Santana Saraiva Seabra
    Seixas Serra Silveira Sobreira Tomé Trindade Valadares Valverde Vasconcelos Veloso Viana
    Vidal Zagalo Aguiar Albuquerque Alvim Amorim Aragão Arruda Assunção Ávila Barata Barreto
    Belo Bezerra Bicho Bordalo Cabaço Caetano Calisto Capelo Cardim Carmo Carrasco Carreira
    Casqueiro Cerqueira Chaves Cid Coutinho Covas Crespo Delgado Espinosa Evangelista Fagundes
    Feio Fidalgo Frota Gaio Galego Gama Gusmão Jacinto Lage Lemos Lobato Lucena Maciel Mangas
    Marçal Mariano Marreiros Mata Medina Mil-Homens Mimoso Mourato Nobre Oliva Orta Palma Pato
    Pena Penedo Pinto-Basto Rabelo Rato Reboredo Rebocho Reinaldo Ruivo Sacramento Sarmento
    Semedo Sena Simas Soeiro Taveira Teles Toscano Trigo Varela Vilela Xavier
    Smith Jones Williams Taylor Brown Davies Evans Wilson Thomas Johnson Roberts Robinson
    Thompson Wright Walker White Edwards Hughes Green Hall Lewis Harris Clarke Patel Jackson
    Wood Turner Martin Cooper Hill Ward Morris Moore Clark Lee King Baker Harrison Morgan Allen
    James Scott Phillips Watson Davis Parker Price Bennett Young Griffiths Mitchell Kelly Cook
    Carter Richardson Bailey Collins Bell Shaw Murphy Miller Cox Richards Khan Marshall Anderson
    Simpson Ellis Adams Singh Wilkinson Foster Chapman Powell Webb Rogers Gray Mason Ali Hunt
    Hussain Campbell Matthews Owen Palmer Holmes Mills Barnes Knight Lloyd Butler Russell Barker
    Fisher Stevens Jenkins Murray Dixon Harvey Graham Pearson Ahmed Fletcher Walsh Kaur Gibson
    Howard Andrews Stewart Elliott Reynolds Saunders Payne Fox Ford Pearce Day Brooks West
    Lawrence Cole Atkinson Bradley Spencer Gill Dawson Ball Burton O'Brien Watts Rose Booth
    Perry Ryan Grant Wells Armstrong Francis Rees Hayes Hart Hudson Newman Barrett Webster
    Hunter Gregory Carr Lowe Page Marsh Riley Dunn Woods Parsons Berry Stone Reid Holland
    Hawkins Harding Porter Robertson Newton Oliver Reed Kennedy Williamson Bird Gardner Shah
    Dean Lane Cooke Bates Henderson Parry Burgess Bishop Walton Burns Nicholson Shepherd Ross
    Cross Long Freeman Warren Nicholls Hamilton Byrne Sutton McDonald Yates Hodgson Robson
    Curtis Hopkins O'Connor Harper Coleman Watkins Moss McCarthy Chambers O'Neill Griffin Sharp
    Hardy Wheeler Potter Osborne Johnston Gordon Doyle Wallace George Jordan Hutchinson Rowe
    Burke May Pritchard Gilbert Willis Higgins Read Miles Stevenson Stephenson Hammond Arnold
    Buckley Walters Hewitt Barber Nelson Slater Austin Sullivan Whitehead Mann Frost Lambert
    Stephens Blake Lynch Goodwin Barton Woodward Thomson Cunningham Quinn Barnett Baxter
    Clayton Nash Greenwood Jennings Holt Kemp Poole Gallagher Bond Stokes Tucker Davidson Fowler
    Heath Norman Middleton Lawson Banks French Stanley Jarvis Gibbs Ferguson Hayward Carroll
    Douglas Hicks Dobson Marlow Marsden Marriott Markham
";

/// The names of `list`, one per whitespace-separated word.
pub fn words(list: &str) -> Vec<&str> {
    list.split_whitespace().collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn lists_are_long_and_without_repeats() {
        for (list, at_least) in [(FIRST, 200), (LAST, 500)] {
            let names = words(list);
            let unique: HashSet<&str> = names.iter().copied().collect();
            assert_eq!(unique.len(), names.len(), "a name appears twice");
            assert!(names.len() >= at_least, "{} names", names.len());
        }
    }
}
